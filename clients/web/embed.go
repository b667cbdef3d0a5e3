// Package web holds the browser client, wxlogin.js, so that the gateway can
// serve it (GET /clients/web/wxlogin.js) to the demo page and to any site:
// go:embed reaches no file outside its module, so this directory is a
// module of its own and the script has one copy, here.
package web

import _ "embed"

// Script is wxlogin.js, the ES module.
//
//go:embed wxlogin.js
var Script []byte
