// The account page. Without JavaScript the new token is a read-only field to select and copy.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("input[data-select-on-focus]").forEach((input) => {
    input.addEventListener("focus", () => input.select());
  });
  if (!navigator.clipboard) return;  // the button stays hidden where copying is not possible
  document.querySelectorAll("button[data-copy]").forEach((button) => {
    const source = document.getElementById(button.dataset.copy);
    const done = button.parentElement.querySelector("[data-copied]");
    button.hidden = false;
    button.addEventListener("click", () => {
      navigator.clipboard.writeText(source.value).then(() => { if (done) done.hidden = false; });
    });
  });
});
