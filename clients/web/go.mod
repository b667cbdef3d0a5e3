module github.com/wxlogin/wxlogin/clients/web

go 1.26.0
