// otaas console: progressive enhancement only. Pages are complete without this script; it
// keeps the parts marked data-live current from the server-sent events the server streams.
"use strict";

function follow(region) {
  const source = new EventSource(region.dataset.live);
  // A region is not replaced while a pointer is pressed in it: a button swapped out between
  // press and release would swallow the click. The newest update waits for the release.
  let pressed = false;
  let pending = null;

  function apply(html) {
    // Keep keyboard focus where it was when the focused control is re-rendered.
    const focusedId = document.activeElement && document.activeElement.id;
    region.innerHTML = html;
    region.dataset.updated = String(Date.now());
    if (focusedId) {
      const again = document.getElementById(focusedId);
      if (again) again.focus();
    }
  }

  region.addEventListener("pointerdown", () => {
    pressed = true;
  });
  document.addEventListener("pointerup", () => {
    if (!pressed) return;
    // After the click the release leads to (a form submission navigates away anyway).
    setTimeout(() => {
      pressed = false;
      if (pending !== null) {
        apply(pending);
        pending = null;
      }
    }, 250);
  });
  source.addEventListener("update", (event) => {
    if (pressed) {
      pending = event.data;
    } else {
      apply(event.data);
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
