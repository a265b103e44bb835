// ddm serve, /jobs: keeps the table current from /api/jobs without reloading the page.
// Served from /static (the CSP allows scripts from this origin only, none inline); every
// value goes in as text, never as markup.
"use strict";

(function () {
  const table = document.getElementById("jobs");
  if (!table) return;
  const PENDING = ["queued", "running"];
  const FAST_MS = 2000;
  const SLOW_MS = 10000;
  const columns = table.tHead.rows[0].cells.length;

  function dash(value) {
    return value === null || value === undefined || value === "" ? "\u2013" : String(value);
  }

  function cell(row, name) {
    return row.querySelector("td." + name);
  }

  function newRow(job) {
    const row = document.createElement("tr");
    row.dataset.job = String(job.id);
    const names = ["n", "", "status", "progress", "n attempts", "worker", "", "finished", "error"];
    names.forEach(function (name) {
      const td = document.createElement("td");
      if (name) td.className = name;
      row.appendChild(td);
    });
    while (row.cells.length < columns) row.appendChild(document.createElement("td"));
    row.cells[0].textContent = String(job.id);
    row.cells[1].textContent = job.kind;
    row.cells[6].textContent = dash(job.created_at);
    const bar = document.createElement("progress");
    const count = document.createElement("span");
    count.className = "count";
    cell(row, "progress").append(bar, " ", count);
    table.tBodies[0].insertBefore(row, table.tBodies[0].firstChild);
    return row;
  }

  function update(row, job) {
    const status = cell(row, "status");
    status.textContent = job.status;
    status.className = "status " + job.status;
    const bar = row.querySelector("progress");
    bar.max = Math.max(job.progress_total, 1);
    bar.value = job.progress_done;
    row.querySelector(".count").textContent = job.progress_done + "/" + job.progress_total;
    cell(row, "attempts").textContent = String(job.attempts);
    cell(row, "worker").textContent = dash(job.worker);
    cell(row, "finished").textContent = dash(job.finished_at);
    cell(row, "error").textContent = job.error || "";
    if (!PENDING.includes(job.status)) {
      const form = row.querySelector("form");
      if (form) form.remove(); // a finished job can no longer be cancelled
    }
  }

  function apply(jobs) {
    jobs.forEach(function (job) {
      const row = table.querySelector('tr[data-job="' + Number(job.id) + '"]') || newRow(job);
      update(row, job);
    });
    return jobs.some(function (job) { return PENDING.includes(job.status); });
  }

  function poll() {
    fetch("/api/jobs", { headers: { accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (jobs) { schedule(apply(jobs) ? FAST_MS : SLOW_MS); })
      .catch(function () { schedule(SLOW_MS); });
  }

  function schedule(delay) {
    window.setTimeout(poll, document.hidden ? SLOW_MS : delay);
  }

  schedule(FAST_MS);
})();
