// Test-side layout check, injected into a copy of report.html (the report itself has no scripts).
// Writes its findings as JSON into a pre element (id layout-check) that chromium --dump-dom carries out.
function describe(el) {
  const text = (el.textContent || "").trim().replace(/\s+/g, " ").slice(0, 60);
  return `${el.tagName.toLowerCase()}.${el.getAttribute("class") || ""} "${text}"`;
}
function boxesOverlap(a, b) {
  return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
}
function check(state) {
  const width = document.documentElement.clientWidth;
  const found = {state, viewport: width, scrollWidth: document.documentElement.scrollWidth,
                 outside: [], cellOverflow: [], svgOutside: [], labelOverlaps: [], tableRight: 0, columns: []};
  for (const el of document.body.querySelectorAll("*")) {
    if (el.closest("svg") && el.tagName.toLowerCase() !== "svg") continue;
    const r = el.getBoundingClientRect();
    if (r.width > 0 && (r.right > width + 0.5 || r.left < -0.5)) found.outside.push(describe(el));
  }
  for (const cell of document.querySelectorAll("td, th, dd, summary, pre, code")) {
    if (cell.getBoundingClientRect().width > 0 && cell.scrollWidth > cell.clientWidth + 1 && cell.clientWidth > 0)
      found.cellOverflow.push(describe(cell));
  }
  const table = document.querySelector("table.candidates");
  if (table) {
    found.tableRight = table.getBoundingClientRect().right;
    found.columns = [...table.querySelectorAll("thead th")].map(th => th.textContent.trim());
    found.hiddenColumns = [...table.querySelectorAll("thead th")].filter(
      th => th.getBoundingClientRect().right > width + 0.5 || th.getBoundingClientRect().width < 8).map(describe);
  }
  for (const svg of document.querySelectorAll("svg.plot")) {
    // client rectangles, so rotated text is measured as drawn
    const box = svg.getBoundingClientRect();
    const texts = [...svg.querySelectorAll("text")];
    for (const t of texts) {
      const b = t.getBoundingClientRect();
      if (b.left < box.left - 0.5 || b.top < box.top - 0.5 || b.right > box.right + 0.5 || b.bottom > box.bottom + 0.5)
        found.svgOutside.push(describe(t));
    }
    const labels = texts.filter(t => t.classList.contains("label")).map(t => [t, t.getBoundingClientRect()]);
    for (let i = 0; i < labels.length; i++)
      for (let j = i + 1; j < labels.length; j++)
        if (boxesOverlap(labels[i][1], labels[j][1]))
          found.labelOverlaps.push(describe(labels[i][0]) + " / " + describe(labels[j][0]));
  }
  return found;
}
const results = [check("closed")];
document.querySelectorAll("details").forEach(d => { d.open = true; });
results.push(check("details open"));
const pre = document.createElement("pre");
pre.id = "layout-check";
pre.textContent = JSON.stringify(results);
document.body.appendChild(pre);
