// The provider list. Sortable2 saves a drag-and-drop reorder with fetch() and
// leaves the page as it is; reloading once the save answered shows the server's
// confirmation message and the route's new numbers (and, should the save have
// failed, its error message instead of a silently wrong order). After a keyboard
// move (the up/down buttons), the focus goes back to the button that was pressed.
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", () => {
    const config = document.getElementById("admin_sortable2_config");
    if (config) {
      const updateUrl = JSON.parse(config.textContent).update_url;
      const originalFetch = window.fetch.bind(window);
      window.fetch = async (resource, options) => {
        const response = await originalFetch(resource, options);
        if (String(resource) === updateUrl) window.location.reload();
        return response;
      };
    }
    // The route switcher shows the chosen route's order as soon as it is picked.
    const switcher = document.getElementById("route-switcher");
    if (switcher && switcher.form) {
      switcher.addEventListener("change", () => switcher.form.submit());
    }
    if (window.location.hash.startsWith("#move-")) {
      const button = document.getElementById(window.location.hash.slice(1));
      if (button) button.focus();
    }
  });
})();
