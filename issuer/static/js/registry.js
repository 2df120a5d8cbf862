// The production registry import's progress page: polls the job's JSON status every second
// and moves the progress bar; when the job ends, reloads the page to show its result.
// Without JavaScript the page still works: its Refresh link shows the progress so far.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const panel = document.querySelector("[data-job-status]");
  if (!panel) return;
  const bar = panel.querySelector("progress");
  const text = panel.querySelector("[data-job-text]");
  const format = (template, values) => template.replace(/\{(\w+)\}/g, (_, key) => String(values[key] ?? ""));
  const show = (status) => {
    const rows = Number(status.rows_done || 0).toLocaleString();
    if (status.percent === null || status.percent === undefined) {
      bar.removeAttribute("value");
      text.textContent = format(panel.dataset.textUnknown, { rows });
    } else {
      bar.value = status.percent;
      bar.textContent = `${status.percent} %`;
      text.textContent = format(panel.dataset.textKnown, { rows, percent: status.percent });
    }
  };
  const poll = async () => {
    try {
      const answer = await fetch(panel.dataset.jobStatus, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
      });
      if (answer.ok) {
        const status = await answer.json();
        if (status.state === "done" || status.state === "failed") {
          window.location.reload();
          return;
        }
        show(status);
      }
    } catch (error) {
      // A dropped connection: try again at the next tick.
    }
    window.setTimeout(poll, 1000);
  };
  window.setTimeout(poll, 1000);
});
