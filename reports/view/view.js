// runner view: sort any table by a click on its column heading, and filter its rows by text.
// Served from 'self' (the Content-Security-Policy allows no inline script); it reads the page's text
// and never turns it into markup: cells are compared and moved as nodes, never through innerHTML.
"use strict";

function cellValue(row, index) {
  const cell = row.cells[index];
  if (!cell) return "";
  return cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
}

function asNumber(text) {
  // "1,234", "12 ms", "$0.0030", "8 / 10": the leading number, or NaN for text.
  const match = /^[$+-]?[\d,]*\.?\d+/.exec(text.replace(/^\$/, ""));
  return match ? parseFloat(match[0].replace(/[$,]/g, "")) : NaN;
}

function sortBy(table, index, header) {
  const body = table.tBodies[0];
  const descending = header.getAttribute("aria-sort") === "ascending";
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = cellValue(a, index);
    const y = cellValue(b, index);
    const nx = asNumber(x);
    const ny = asNumber(y);
    const order = !isNaN(nx) && !isNaN(ny) ? nx - ny : x.localeCompare(y);
    return descending ? -order : order;
  });
  for (const th of table.tHead.rows[0].cells) th.removeAttribute("aria-sort");
  header.setAttribute("aria-sort", descending ? "descending" : "ascending");
  for (const row of rows) body.appendChild(row);
}

function filterRows(table, text) {
  const wanted = text.toLowerCase();
  for (const row of table.tBodies[0].rows) {
    row.hidden = wanted !== "" && !row.textContent.toLowerCase().includes(wanted);
  }
}

function enhance(table) {
  if (!table.tHead || !table.tBodies.length || table.closest("td")) return;
  Array.from(table.tHead.rows[0].cells).forEach((header, index) => {
    header.classList.add("sortable");
    header.title = header.title || "click to sort";
    header.addEventListener("click", () => sortBy(table, index, header));
  });
  const box = document.createElement("input");
  box.type = "search";
  box.className = "filter";
  box.placeholder = "filter these rows";
  box.setAttribute("aria-label", "filter the rows of the table below");
  box.addEventListener("input", () => filterRows(table, box.value));
  table.parentNode.insertBefore(box, table);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("main table").forEach(enhance);
});
