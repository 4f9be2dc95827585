// Filters the dashboard's case table as the coordinator types; the text never leaves the page.
(function () {
  "use strict";
  var box = document.getElementById("case-search");
  var table = document.getElementById("case-table");
  if (!box || !table) { return; }
  box.addEventListener("input", function () {
    var needle = box.value.trim().toLowerCase();
    table.querySelectorAll("tbody tr").forEach(function (row) {
      row.hidden = needle !== "" && row.textContent.toLowerCase().indexOf(needle) === -1;
    });
  });
})();
