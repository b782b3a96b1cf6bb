// otaas console: progressive enhancement only. Pages are complete without this script; it
// keeps the parts marked data-live current from the server-sent events the server streams.
"use strict";

function follow(region) {
  const source = new EventSource(region.dataset.live);
  source.addEventListener("update", (event) => {
    // Keep keyboard focus where it was when the focused control is re-rendered.
    const focusedId = document.activeElement && document.activeElement.id;
    region.innerHTML = event.data;
    region.dataset.updated = String(Date.now());
    if (focusedId) {
      const again = document.getElementById(focusedId);
      if (again) again.focus();
    }
  });
  source.addEventListener("error", () => {
    region.dataset.stale = "true";
  });
  source.addEventListener("open", () => {
    delete region.dataset.stale;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(follow);
});
