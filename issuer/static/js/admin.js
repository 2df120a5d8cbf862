// Administration pages. Without JavaScript every field stays visible and the server decides.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // The user forms: show only the organisation select the chosen role needs.
  const STAFF = ["manufacturer_admin", "aftersales"];
  document.querySelectorAll("select[data-role-select]").forEach((roleSelect) => {
    const form = roleSelect.form;
    const fieldOf = (kind) => {
      const select = form.querySelector(`select[data-organisation="${kind}"]`);
      return select ? select.closest(".field") : null;
    };
    const update = () => {
      const role = roleSelect.value;
      const manufacturer = fieldOf("manufacturer");
      const exporter = fieldOf("exporter");
      if (manufacturer) manufacturer.hidden = !STAFF.includes(role);
      if (exporter) exporter.hidden = role !== "exporter";
    };
    roleSelect.addEventListener("change", update);
    update();
  });
});
