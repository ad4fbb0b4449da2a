// Bulk cancel on the list: "select all on this page" ticks the rows' boxes, and the button says how many
// batches it would cancel. Everything also works without this script (the form sends the page's
// batches itself when "select all on this page" is ticked); this only keeps the boxes and the count
// in step.
(function () {
  function form() { return document.getElementById("bulk-cancel"); }
  function rowBoxes() {
    return Array.prototype.slice.call(document.querySelectorAll('input[name="batch"][form="bulk-cancel"]'));
  }
  function render() {
    const bulk = form();
    if (!bulk) return;
    const boxes = rowBoxes();
    const page = bulk.querySelector("[data-bulk-page]");
    const filtered = bulk.querySelector("[data-bulk-filtered]");
    const button = bulk.querySelector("[data-bulk-submit]");
    if (page) page.checked = boxes.length > 0 && boxes.every(function (box) { return box.checked; });
    const count = filtered && filtered.checked
      ? Number(bulk.dataset.bulkMatching)
      : boxes.filter(function (box) { return box.checked; }).length;
    button.textContent = count ? "Cancel " + count + " batch" + (count === 1 ? "" : "es") : "Cancel selected batches";
    button.setAttribute("aria-disabled", String(!count));
  }
  document.addEventListener("change", function (event) {
    const target = event.target;
    if (target.matches("[data-bulk-page]")) {
      rowBoxes().forEach(function (box) { box.checked = target.checked; });
    }
    if (target.matches("[data-bulk-page], [data-bulk-filtered], input[name='batch'][form='bulk-cancel']")) render();
  });
  document.addEventListener("submit", function (event) {
    const button = event.target.querySelector && event.target.querySelector("[data-bulk-submit]");
    if (button && button.getAttribute("aria-disabled") === "true") {
      event.preventDefault();
      button.textContent = "Select batches first";
    }
  });
  document.addEventListener("DOMContentLoaded", render);
  document.addEventListener("htmx:afterSettle", render);
})();
