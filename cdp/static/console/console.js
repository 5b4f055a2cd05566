/* The Console's small behaviours on every page: copy buttons and tabs. No dependency. */
(function () {
  "use strict";

  function ready(fn) {
    if (document.readyState !== "loading") {
      fn();
    } else {
      document.addEventListener("DOMContentLoaded", fn);
    }
  }

  /* Copy buttons: <button class="copy-button" data-copy-target="ID"> copies the text of #ID. */
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain http (a local demo server): the Clipboard API is not offered there.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      try {
        if (document.execCommand("copy")) {
          resolve();
        } else {
          reject(new Error("copy refused"));
        }
      } catch (error) {
        reject(error);
      } finally {
        document.body.removeChild(area);
      }
    });
  }

  function onCopyClick(event) {
    var button = event.target.closest(".copy-button");
    if (!button) {
      return;
    }
    event.preventDefault();
    var source = document.getElementById(button.getAttribute("data-copy-target"));
    if (!source) {
      return;
    }
    var text = source.value !== undefined && source.tagName === "TEXTAREA" ? source.value : source.textContent;
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    copyText(text).then(
      function () {
        button.textContent = "Copied";
        button.setAttribute("data-copied", "true");
      },
      function () {
        button.textContent = "Select and copy";
        button.setAttribute("data-copied", "false");
        var range = document.createRange();
        range.selectNodeContents(source);
        var selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      }
    );
    window.setTimeout(function () {
      button.textContent = label;
    }, 2000);
  }

  /* Tabs: <nav class="console-tabs"> of <a data-tab="PANEL-ID">; panels are shown one at a
     time. Without script every panel shows. #PANEL-ID in the URL picks the tab. */
  function setUpTabs(nav) {
    var links = Array.prototype.slice.call(nav.querySelectorAll("[data-tab]"));
    var panels = links.map(function (link) {
      return document.getElementById(link.getAttribute("data-tab"));
    });

    function activate(id, remember) {
      links.forEach(function (link, index) {
        var active = link.getAttribute("data-tab") === id;
        link.classList.toggle("active", active);
        link.setAttribute("aria-selected", active ? "true" : "false");
        if (panels[index]) {
          panels[index].hidden = !active;
        }
      });
      nav.setAttribute("data-active-tab", id);
      if (remember && window.history && window.history.replaceState) {
        window.history.replaceState(null, "", "#" + id);
      }
    }

    links.forEach(function (link) {
      link.setAttribute("role", "tab");
      link.addEventListener("click", function (event) {
        event.preventDefault();
        activate(link.getAttribute("data-tab"), true);
      });
    });

    var wanted = window.location.hash.replace("#", "");
    var ids = links.map(function (link) {
      return link.getAttribute("data-tab");
    });
    // Errors on the form are in the first tab: show it whatever the URL says.
    var hasErrors = panels[0] && panels[0].querySelector(".errornote, .errorlist");
    activate(!hasErrors && ids.indexOf(wanted) >= 0 ? wanted : ids[0], false);
  }

  ready(function () {
    document.addEventListener("click", onCopyClick);
    Array.prototype.forEach.call(document.querySelectorAll(".console-tabs"), setUpTabs);
  });
})();
