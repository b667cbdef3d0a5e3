// Renders the gateway's OpenAPI document: operations grouped by tag with
// their parameters, bodies and responses, then the schemas. It builds DOM
// nodes with textContent only, so nothing in the document can inject markup.
(function () {
  "use strict";

  var METHODS = ["get", "head", "post", "put", "patch", "delete", "options"];
  var MAX_DEPTH = 8;

  function el(tag, attrs, children) {
    var n = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === "text") n.textContent = attrs[k];
        else if (k === "class") n.className = attrs[k];
        else n.setAttribute(k, attrs[k]);
      });
    }
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      n.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return n;
  }

  // Inline markdown: `code` and **bold**; everything else is text.
  function inline(text) {
    var frag = document.createDocumentFragment();
    var re = /(`[^`]+`|\*\*[^*]+\*\*)/g, last = 0, m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) frag.appendChild(document.createTextNode(text.slice(last, m.index)));
      var tok = m[0];
      frag.appendChild(tok[0] === "`" ? el("code", { text: tok.slice(1, -1) }) : el("strong", { text: tok.slice(2, -2) }));
      last = m.index + tok.length;
    }
    if (last < text.length) frag.appendChild(document.createTextNode(text.slice(last)));
    return frag;
  }

  // Block markdown: paragraphs and pipe tables.
  function markdown(text) {
    var box = el("div", { class: "md" });
    if (!text) return box;
    text.split(/\n\s*\n/).forEach(function (block) {
      var lines = block.split("\n");
      if (lines.length >= 2 && /^\s*\|/.test(lines[0]) && /^\s*\|[\s|:-]+\|\s*$/.test(lines[1])) {
        var cells = function (line) { return line.trim().replace(/^\||\|$/g, "").split("|").map(function (c) { return c.trim(); }); };
        var table = el("table"), head = el("tr");
        cells(lines[0]).forEach(function (c) { var th = el("th"); th.appendChild(inline(c)); head.appendChild(th); });
        table.appendChild(el("thead", null, [head]));
        var tbody = el("tbody");
        lines.slice(2).forEach(function (line) {
          var tr = el("tr");
          cells(line).forEach(function (c) { var td = el("td"); td.appendChild(inline(c)); tr.appendChild(td); });
          tbody.appendChild(tr);
        });
        table.appendChild(tbody);
        box.appendChild(table);
      } else {
        var p = el("p");
        p.appendChild(inline(block));
        box.appendChild(p);
      }
    });
    return box;
  }

  function Renderer(doc) {
    this.doc = doc;
  }

  // resolve follows a local $ref ("#/components/...").
  Renderer.prototype.resolve = function (obj) {
    var seen = 0;
    while (obj && obj.$ref && seen++ < 16) {
      var parts = obj.$ref.replace(/^#\//, "").split("/"), cur = this.doc;
      for (var i = 0; i < parts.length && cur; i++) cur = cur[parts[i].replace(/~1/g, "/").replace(/~0/g, "~")];
      obj = cur;
    }
    return obj || {};
  };

  function refName(s) {
    return s && s.$ref ? s.$ref.split("/").pop() : "";
  }

  function typeText(s) {
    var t = s.type;
    if (Array.isArray(t)) t = t.join(" | ");
    if (!t) {
      if (s.oneOf) t = "one of";
      else if (s.allOf) t = "all of";
      else if (s.properties) t = "object";
      else t = "any";
    }
    if (t === "array" && s.items) t = "array of " + (refName(s.items) || typeText(s.items));
    if (s.format) t += " (" + s.format + ")";
    return t;
  }

  function constraints(s) {
    var out = [];
    if (s.const !== undefined) out.push("= " + JSON.stringify(s.const));
    if (s.enum) out.push("one of " + s.enum.map(function (v) { return JSON.stringify(v); }).join(", "));
    if (s.maxLength !== undefined) out.push("≤ " + s.maxLength + " chars");
    if (s.minimum !== undefined) out.push("≥ " + s.minimum);
    if (s.maximum !== undefined) out.push("≤ " + s.maximum);
    if (s.minProperties !== undefined) out.push("at least " + s.minProperties + " field");
    if (s.default !== undefined) out.push("default " + JSON.stringify(s.default));
    return out.join("; ");
  }

  // schema renders a schema as an expandable tree.
  Renderer.prototype.schema = function (schema, depth) {
    depth = depth || 0;
    var name = refName(schema), s = this.resolve(schema);
    var box = el("div", { class: "schema" });
    var label = el("span", null, [
      name ? el("span", { class: "ref", text: name + " " }) : null,
      el("span", { class: "type", text: typeText(s) }),
    ]);
    var c = constraints(s);
    if (c) label.appendChild(el("span", { class: "note", text: "  " + c }));
    var kids = this.children(s, depth);
    if (!kids || depth >= MAX_DEPTH) {
      box.appendChild(label);
      return box;
    }
    var det = el("details", depth < 2 ? { open: "" } : null, [el("summary", null, [label])]);
    kids.forEach(function (k) { det.appendChild(k); });
    box.appendChild(det);
    return box;
  };

  // children lists a schema's properties or alternatives, or null.
  Renderer.prototype.children = function (s, depth) {
    var self = this, out = [];
    if (s.allOf) {
      s.allOf.forEach(function (part) { out.push(self.schema(part, depth + 1)); });
    }
    if (s.oneOf) {
      s.oneOf.forEach(function (alt, i) {
        var a = self.resolve(alt);
        out.push(el("div", { class: "alt", text: (i ? "or " : "either ") + (a.title || refName(alt) || typeText(a)) }));
        out.push(self.schema(alt, depth + 1));
      });
    }
    if (s.properties) {
      var req = s.required || [];
      Object.keys(s.properties).forEach(function (p) {
        var ps = s.properties[p], r = self.resolve(ps);
        var row = el("div", { class: "prop" }, [
          el("span", { class: "name", text: p }),
          req.indexOf(p) >= 0 ? el("span", { class: "req", text: " required" }) : null,
          document.createTextNode(": "),
        ]);
        var sub = self.children(r, depth + 1);
        if (sub && depth + 1 < MAX_DEPTH) {
          row.appendChild(self.schema(ps, depth + 1));
        } else {
          row.appendChild(el("span", { class: "ref", text: refName(ps) ? refName(ps) + " " : "" }));
          row.appendChild(el("span", { class: "type", text: typeText(r) }));
          var c = constraints(r);
          if (c) row.appendChild(el("span", { class: "note", text: "  " + c }));
        }
        if (r.description) {
          var d = el("div", { class: "note" });
          d.appendChild(inline(r.description.split("\n")[0]));
          row.appendChild(d);
        }
        out.push(row);
      });
      if (s.additionalProperties === false) out.push(el("div", { class: "note", text: "No other fields." }));
    }
    if (s.type === "array" && s.items && this.children(this.resolve(s.items), depth + 1)) {
      out.push(this.schema(s.items, depth + 1));
    }
    return out.length ? out : null;
  };

  // content lists the media types; types sharing a schema are shown once.
  Renderer.prototype.content = function (content) {
    var self = this, box = el("div"), groups = [], byKey = {};
    Object.keys(content || {}).forEach(function (ct) {
      var key = JSON.stringify(content[ct].schema || null);
      if (!(key in byKey)) {
        byKey[key] = groups.length;
        groups.push({ types: [], schema: content[ct].schema });
      }
      groups[byKey[key]].types.push(ct);
    });
    groups.forEach(function (g) {
      box.appendChild(el("div", { class: "ctype", text: g.types.join(", ") }));
      if (g.schema) box.appendChild(self.schema(g.schema, 0));
    });
    return box;
  };

  Renderer.prototype.parameters = function (params) {
    var self = this;
    var rows = params.map(function (p) {
      p = self.resolve(p);
      var s = self.resolve(p.schema || {});
      var desc = el("td");
      if (p.description) desc.appendChild(inline(p.description));
      var c = constraints(s);
      if (c) desc.appendChild(el("div", { class: "note muted", text: c }));
      return el("tr", null, [
        el("td", null, [el("code", { text: p.name }), p.required ? el("span", { class: "req", text: " required" }) : null]),
        el("td", { text: p.in }),
        el("td", { class: "mono", text: typeText(s) }),
        desc,
      ]);
    });
    return el("table", null, [
      el("thead", null, [el("tr", null, [el("th", { text: "name" }), el("th", { text: "in" }), el("th", { text: "type" }), el("th", { text: "description" })])]),
      el("tbody", null, rows),
    ]);
  };

  Renderer.prototype.responses = function (responses) {
    var self = this;
    var rows = Object.keys(responses).map(function (status) {
      var r = self.resolve(responses[status]);
      var cell = el("td");
      cell.appendChild(markdown(r.description || ""));
      var headers = Object.keys(r.headers || {}).filter(function (h) { return h !== "X-Request-ID"; });
      if (headers.length) {
        var hl = el("div", { class: "note" }, [document.createTextNode("Headers: ")]);
        headers.forEach(function (h, i) {
          var hd = self.resolve(r.headers[h]);
          if (i) hl.appendChild(document.createTextNode(", "));
          hl.appendChild(el("code", { text: h }));
          if (hd.description) { hl.appendChild(document.createTextNode(" — ")); hl.appendChild(inline(hd.description)); }
        });
        cell.appendChild(hl);
      }
      if (r.content) cell.appendChild(self.content(r.content));
      return el("tr", null, [el("td", { class: "status s" + status[0], text: status }), cell]);
    });
    return el("table", null, [el("tbody", null, rows)]);
  };

  function anchor(method, path) {
    return "op-" + method + path.replace(/[^A-Za-z0-9]+/g, "-").replace(/-$/, "");
  }

  Renderer.prototype.operation = function (method, path, op) {
    var secured = (op.security || this.doc.security || []).length > 0;
    var det = el("details", { class: "op", id: anchor(method, path) }, [
      el("summary", null, [
        el("span", { class: "method " + method, text: method }),
        el("span", { class: "path", text: path }),
        secured ? el("span", { class: "lock", title: "Requires a Bearer access token", text: "Bearer" }) : null,
        el("span", { class: "summary", text: op.summary || "" }),
      ]),
    ]);
    var body = el("div", { class: "body" });
    if (op.description) body.appendChild(markdown(op.description));
    if (op.operationId) body.appendChild(el("div", { class: "note muted", text: "operationId: " + op.operationId }));
    if (op.parameters && op.parameters.length) {
      body.appendChild(el("h3", { text: "Parameters" }));
      body.appendChild(this.parameters(op.parameters));
    }
    if (op.requestBody) {
      var rb = this.resolve(op.requestBody);
      body.appendChild(el("h3", { text: "Request body" + (rb.required ? "" : " (optional)") }));
      if (rb.description) body.appendChild(markdown(rb.description));
      body.appendChild(this.content(rb.content));
    }
    body.appendChild(el("h3", { text: "Responses" }));
    body.appendChild(this.responses(op.responses || {}));
    det.appendChild(body);
    return det;
  };

  Renderer.prototype.render = function (main, nav) {
    var doc = this.doc, self = this;
    document.title = (doc.info && doc.info.title) || document.title;
    document.getElementById("title").textContent = document.title;
    document.getElementById("version").textContent = doc.info && doc.info.version ? "v" + doc.info.version : "";

    var intro = el("div", { class: "intro" }, [el("h1", { text: doc.info.title })]);
    if (doc.info.summary) intro.appendChild(el("p", { class: "muted", text: doc.info.summary }));
    intro.appendChild(markdown(doc.info.description || ""));
    main.appendChild(intro);

    // Group by first tag, in the document's tag order.
    var order = (doc.tags || []).map(function (t) { return t.name; });
    var groups = {};
    Object.keys(doc.paths || {}).forEach(function (path) {
      METHODS.forEach(function (m) {
        var op = doc.paths[path][m];
        if (!op) return;
        var tag = (op.tags && op.tags[0]) || "other";
        if (order.indexOf(tag) < 0) order.push(tag);
        (groups[tag] = groups[tag] || []).push({ method: m, path: path, op: op });
      });
    });
    order.forEach(function (tag) {
      var ops = groups[tag];
      if (!ops) return;
      var info = (doc.tags || []).filter(function (t) { return t.name === tag; })[0] || {};
      var sec = el("section", { class: "tag", id: "tag-" + tag }, [el("h2", { text: tag })]);
      if (info.description) sec.appendChild(el("p", { class: "muted", text: info.description }));
      nav.appendChild(el("h4", { text: tag }));
      ops.forEach(function (o) {
        sec.appendChild(self.operation(o.method, o.path, o.op));
        var link = el("a", { href: "#" + anchor(o.method, o.path), "data-filter": (o.method + " " + o.path + " " + (o.op.summary || "")).toLowerCase() }, [
          el("span", { class: "method " + o.method, text: o.method }),
          el("span", { text: o.path }),
        ]);
        link.addEventListener("click", function () {
          var target = document.getElementById(anchor(o.method, o.path));
          if (target) target.open = true;
        });
        nav.appendChild(link);
      });
      main.appendChild(sec);
    });

    var schemas = (doc.components && doc.components.schemas) || {};
    if (Object.keys(schemas).length) {
      var sec = el("section", { class: "tag", id: "schemas" }, [el("h2", { text: "schemas" })]);
      nav.appendChild(el("h4", { text: "schemas" }));
      Object.keys(schemas).forEach(function (name) {
        var s = schemas[name];
        var det = el("details", { class: "op", id: "schema-" + name }, [
          el("summary", null, [el("span", { class: "path", text: name }), el("span", { class: "summary", text: typeText(s) })]),
        ]);
        var body = el("div", { class: "body" });
        if (s.description) body.appendChild(markdown(s.description));
        body.appendChild(self.schema({ $ref: "#/components/schemas/" + name }, 0));
        det.appendChild(body);
        sec.appendChild(det);
        var link = el("a", { href: "#schema-" + name, "data-filter": name.toLowerCase() }, [el("span", { text: name })]);
        link.addEventListener("click", function () { det.open = true; });
        nav.appendChild(link);
      });
      main.appendChild(sec);
    }
  };

  function filter(nav, q) {
    q = q.trim().toLowerCase();
    Array.prototype.forEach.call(nav.querySelectorAll("a[data-filter]"), function (a) {
      a.classList.toggle("hidden", q !== "" && a.getAttribute("data-filter").indexOf(q) < 0);
    });
  }

  function start() {
    var main = document.getElementById("main"), nav = document.getElementById("nav-list");
    var loading = document.getElementById("loading");
    fetch("openapi.json", { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("openapi.json: HTTP " + r.status);
        return r.json();
      })
      .then(function (doc) {
        loading.remove();
        new Renderer(doc).render(main, nav);
        document.getElementById("filter").addEventListener("input", function (e) { filter(nav, e.target.value); });
        if (location.hash) {
          var t = document.getElementById(location.hash.slice(1));
          if (t) { t.open = true; t.scrollIntoView(); }
        }
      })
      .catch(function (err) {
        loading.textContent = "Could not load the API description: " + err.message;
      });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
