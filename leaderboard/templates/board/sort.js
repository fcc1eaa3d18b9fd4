/* Sortable tables: click (or press Enter on) a header with data-sort="num" or "text". Cells sort by their
   data-value attribute (their text when absent); empty values always go last. Numbers sort best first on the
   first click, text A to Z; a second click reverses. No dependencies, works from file://. */
(function () {
  "use strict";
  function value(cell, numeric) {
    var raw = cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent;
    if (numeric) {
      var x = parseFloat(raw);
      return isNaN(x) ? null : x;
    }
    return raw === "" ? null : raw.toLocaleLowerCase();
  }
  function sortBy(th) {
    var row = th.parentNode;
    var table = th.closest("table");
    var body = table.tBodies[0];
    var index = Array.prototype.indexOf.call(row.children, th);
    var numeric = th.getAttribute("data-sort") === "num";
    var current = th.getAttribute("aria-sort");
    var dir = current ? (current === "descending" ? "ascending" : "descending") : (numeric ? "descending" : "ascending");
    var sign = dir === "ascending" ? 1 : -1;
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a.cells[index], numeric);
      var y = value(b.cells[index], numeric);
      if (x === null || y === null) {
        return x === y ? 0 : (x === null ? 1 : -1);
      }
      return x < y ? -sign : (x > y ? sign : 0);
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(row.children, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
  }
  document.querySelectorAll("table.board th[data-sort]").forEach(function (th) {
    th.tabIndex = 0;
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        sortBy(th);
      }
    });
  });
})();
