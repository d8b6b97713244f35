# Flattens one JSON document into "path<TAB>value" lines (path parts joined by ".").
function ws() { while (substr(s, i, 1) ~ /[ \t\r\n]/) i++ }
function str(   out, c) {
  i++; out = ""
  for (;;) {
    c = substr(s, i, 1)
    if (c == "\\") { out = out substr(s, i + 1, 1); i += 2; continue }
    if (c == "\"" || c == "") { i++; return out }
    out = out c; i++
  }
}
function value(path,   c, key, n) {
  ws(); c = substr(s, i, 1)
  if (c == "{") {
    i++; ws()
    if (substr(s, i, 1) == "}") { i++; return }
    for (;;) {
      ws(); key = str(); ws(); i++
      value(path == "" ? key : path "." key)
      ws(); c = substr(s, i, 1); i++
      if (c != ",") return
    }
  }
  if (c == "[") {
    i++; ws(); n = 0
    if (substr(s, i, 1) == "]") { i++; return }
    for (;;) {
      value(path "." n); n++
      ws(); c = substr(s, i, 1); i++
      if (c != ",") return
    }
  }
  if (c == "\"") { print path "\t" str(); return }
  if (match(substr(s, i), /^[-+0-9.eEa-z]+/)) { print path "\t" substr(s, i, RLENGTH); i += RLENGTH }
}
{ s = s $0 "\n" }
END { i = 1; value("") }
