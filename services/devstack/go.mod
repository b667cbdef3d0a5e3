module github.com/wxlogin/wxlogin/services/devstack

go 1.26.0

require github.com/wxlogin/wxlogin/shared v0.0.0

require (
	github.com/chromedp/cdproto v0.159.0 // indirect
	github.com/chromedp/chromedp v0.22.1 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
)

replace github.com/wxlogin/wxlogin/shared => ../../shared
