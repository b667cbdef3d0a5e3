module github.com/wxlogin/wxlogin/services/fakewechat

go 1.26.0

require (
	github.com/caarlos0/env/v11 v11.4.2
	github.com/wxlogin/wxlogin/shared v0.0.0
)

require (
	github.com/google/uuid v1.6.0 // indirect
	github.com/skip2/go-qrcode v0.0.0-20200617195104-da1b6568686e // indirect
)

replace github.com/wxlogin/wxlogin/shared => ../../shared

replace github.com/wxlogin/wxlogin/verify => ../../verify
