module github.com/wxlogin/wxlogin/deploy/healthcheck

go 1.26.0
