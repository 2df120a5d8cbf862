// Behaviour shared by every page; each works without JavaScript too (plain forms and links).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // <form data-confirm="Are you sure?">: ask before submitting (revoking, rotating a key, …).
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
  // <input type=checkbox data-check-all="name">: ticks or clears every checkbox named "name".
  document.querySelectorAll("input[data-check-all]").forEach((master) => {
    master.addEventListener("change", () => {
      document.querySelectorAll(`input[type=checkbox][name="${master.dataset.checkAll}"]:not(:disabled)`)
        .forEach((box) => { box.checked = master.checked; });
    });
  });
  // The menu starts open on wide screens and closed on narrow ones.
  const menu = document.querySelector("details.menu");
  if (menu && window.matchMedia("(max-width: 720px)").matches) menu.open = false;
});
