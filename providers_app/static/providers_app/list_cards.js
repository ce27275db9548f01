// On a phone the event log, the traces and the alert channels show one card per
// row (admin.css): each cell is labelled with its column's heading.
document.addEventListener("DOMContentLoaded", () => {
  const table = document.getElementById("result_list");
  if (!table) return;
  const titles = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
  for (const row of table.querySelectorAll("tbody tr")) {
    [...row.children].forEach((cell, i) => {
      if (titles[i]) cell.dataset.label = titles[i];
    });
  }
  table.classList.add("cards");
});
