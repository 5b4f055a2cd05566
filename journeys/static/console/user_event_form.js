/* The User Event form's row editors: Filter conditions and Update Values, the media of
   journeys.widgets.RowEditorWidget (journeys/widgets/row_editor.html renders the markup).

   The form posts the JSON held by the hidden inputs #id_filters and #id_update_values; this
   script shows that JSON as rows (#filter-rows, #update-rows) that can be added
   (#add-filter-row, #add-update-row) and removed (.remove-row), and writes the rows back on
   every change. The server validates it (journeys.services); its errors, by path
   (filter.conditions[1].value), arrive in the editor's data-errors, worded for the page in
   its data-error-words ("Value is needed for ≥"), and are shown in words on their row, the
   service's message in the title. Operators read as the schema's operatorLabels; a field
   change offers its type's operators and drops an operator or a value that no longer
   fits. The model's fields, the operators by type and the targets come from the
   #user-event-schema JSON. No dependency.

   Change-aware rows: for a Changed trigger (the add form's #id_trigger, a change form's
   schema.trigger) the field selects also offer each field's value before the write
   (previous.<field>, in a "Before this write" group) and the operators changed and
   not_changed, on a field itself only. A row that uses them when the trigger is not
   Changed keeps its values, flagged, and the server says what it refuses, as a model
   change that leaves an operator behind does. */
(function () {
  "use strict";

  var NUMERIC_TYPES = ["integer", "number", "timestamp"];
  var NUMBER_TEXT = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

  function ready(fn) {
    if (document.readyState !== "loading") {
      fn();
    } else {
      document.addEventListener("DOMContentLoaded", fn);
    }
  }

  function element(tag, attributes, children) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      if (name === "text") {
        node.textContent = attributes[name];
      } else {
        node.setAttribute(name, attributes[name]);
      }
    });
    (children || []).forEach(function (child) {
      node.appendChild(child);
    });
    return node;
  }

  function option(value, label, selected) {
    var node = element("option", { value: value, text: label });
    if (selected) {
      node.selected = true;
    }
    return node;
  }

  function shown(value) {
    if (value === undefined || value === null) {
      return "";
    }
    if (Array.isArray(value)) {
      return value.map(shown).join(", ");
    }
    if (typeof value === "object") {
      return JSON.stringify(value);
    }
    return String(value);
  }

  function splitList(raw) {
    return raw
      .split(",")
      .map(function (item) {
        return item.trim();
      })
      .filter(function (item) {
        return item !== "";
      });
  }

  /* A typed text as a value of a field of `type`: numbers and booleans as JSON has them,
     everything else as typed (the server coerces and says what it refuses). */
  function scalar(raw, type) {
    var text = raw.trim();
    if (NUMERIC_TYPES.indexOf(type) >= 0 && NUMBER_TEXT.test(text)) {
      return Number(text);
    }
    if (type === "boolean" && (text === "true" || text === "false")) {
      return text === "true";
    }
    return type === "text" ? raw : text;
  }

  ready(function () {
    var schemaNode = document.getElementById("user-event-schema");
    if (!schemaNode) {
      return;
    }
    var schema = JSON.parse(schemaNode.textContent);
    var modelSelect = document.getElementById("id_data_model");
    var triggerSelect = document.getElementById("id_trigger");
    var eventTimeSelect = document.getElementById("id_event_time");
    var modelIds = Object.keys(schema.models);

    function currentModel() {
      var id = modelSelect ? modelSelect.value : modelIds.length === 1 ? modelIds[0] : "";
      return schema.models[id] || null;
    }

    function fields() {
      var model = currentModel();
      return model ? model.fields : [];
    }

    /* Whether the trigger lets rows look at the record before the write. */
    function changeAware() {
      var trigger = triggerSelect ? triggerSelect.value : schema.trigger;
      return (schema.changeAwareTriggers || []).indexOf(trigger) >= 0;
    }

    function isPrevious(name) {
      return typeof name === "string" && !!schema.previousPrefix && name.indexOf(schema.previousPrefix) === 0;
    }

    function isChangeOperator(operator) {
      return (schema.changeOperators || []).indexOf(operator) >= 0;
    }

    function findField(name) {
      var bare = isPrevious(name) ? name.slice(schema.previousPrefix.length) : name;
      return (
        fields().filter(function (field) {
          return field.name === bare;
        })[0] || null
      );
    }

    /* The type of a field, or of the field whose previous value `name` names. */
    function fieldType(name) {
      var found = findField(name);
      return found ? found.type : null;
    }

    /* The type of a field the row may use with this trigger: null for previous.<field>
       unless the trigger is Changed. */
    function offeredType(name) {
      return isPrevious(name) && !changeAware() ? null : fieldType(name);
    }

    function operatorLabel(operator) {
      var labels = schema.operatorLabels || {};
      return Object.prototype.hasOwnProperty.call(labels, operator) ? labels[operator] : operator.replace(/_/g, " ");
    }

    /* A row uses what only a Changed User Event may: flagged while the trigger is not. */
    function flagChangedOnly(row, uses) {
      var flagged = uses && !changeAware();
      row.classList.toggle("changed-only", flagged);
      var note = row.querySelector(".row-note");
      note.hidden = !flagged;
    }

    function fillFieldSelect(select, selected, types) {
      select.innerHTML = "";
      select.appendChild(option("", "— field —", !selected));
      var names = [];
      var offered = fields().filter(function (field) {
        return !types || types.indexOf(field.type) >= 0;
      });
      offered.forEach(function (field) {
        names.push(field.name);
        var label = field.name + (field.label ? " — " + field.label : "") + " (" + field.type + ")";
        select.appendChild(option(field.name, label, field.name === selected));
      });
      if (changeAware() && offered.length) {
        var group = element("optgroup", { label: "Before this write", class: "previous-fields" });
        offered.forEach(function (field) {
          var name = schema.previousPrefix + field.name;
          names.push(name);
          var node = option(name, (field.label || field.name) + " (before this write)", name === selected);
          node.title = name + " (" + field.type + ")";
          group.appendChild(node);
        });
        select.appendChild(group);
      }
      if (selected && names.indexOf(selected) < 0) {
        // Kept as it was posted, so the server's error about it stays readable.
        var why = isPrevious(selected) && findField(selected) && !changeAware()
          ? " (Changed User Events only)"
          : " (not a field of this model)";
        select.appendChild(option(selected, selected + why, true));
      }
    }

    function jsonAttribute(node, name) {
      try {
        return JSON.parse(node.getAttribute(name) || "{}") || {};
      } catch (error) {
        return {};
      }
    }

    function placeErrors(editor, pattern, rows) {
      var byPath = jsonAttribute(editor, "data-errors");
      var words = jsonAttribute(editor, "data-error-words");
      var general = editor.querySelector(".editor-errors");
      Object.keys(byPath).forEach(function (path) {
        var match = pattern.exec(path);
        var row = match ? rows()[Number(match[1])] : null;
        var list = row ? row.querySelector(".row-errors") : general;
        byPath[path].forEach(function (message, index) {
          var worded = (words[path] || [])[index] || message;
          list.appendChild(element("li", { text: worded, title: path + ": " + message }));
        });
        if (row) {
          row.classList.add("has-errors");
          row.setAttribute("data-error-path", path);
        }
      });
      // Every message is now on its row or on the editor: the field's own list would
      // repeat them.
      var fieldRow = editor.closest(".form-row");
      if (fieldRow && Object.keys(byPath).length) {
        Array.prototype.forEach.call(fieldRow.children, function (child) {
          if (child.tagName === "UL" && child.classList.contains("errorlist")) {
            child.hidden = true;
          }
        });
      }
    }

    function readJson(input, fallback, editor) {
      if (!input.value) {
        return fallback;
      }
      try {
        return JSON.parse(input.value);
      } catch (error) {
        editor.querySelector(".editor-errors").appendChild(
          element("li", { text: "The stored value is not valid JSON: " + input.value })
        );
        return fallback;
      }
    }

    function changedOnlyNote() {
      var note = element("p", {
        class: "row-note",
        text: "Only a Changed User Event can use a value before this write or changed / did not change.",
      });
      note.hidden = true;
      return note;
    }

    function removeButton(onRemove) {
      var button = element("button", { type: "button", class: "button remove-row", text: "Remove" });
      button.addEventListener("click", onRemove);
      return button;
    }

    /* --- Filter ------------------------------------------------------------------------ */

    var filterInput = document.getElementById("id_filters");
    var filterEditor = document.getElementById("filter-editor");
    var filterRows = document.getElementById("filter-rows");
    var matchSelect = document.getElementById("filter-match");

    function filterRowList() {
      return Array.prototype.slice.call(filterRows.querySelectorAll(".filter-row"));
    }

    function writeFilter() {
      var conditions = filterRowList().map(function (row) {
        var field = row.querySelector(".filter-field").value;
        var operator = row.querySelector(".filter-operator").value;
        var condition = { field: field, operator: operator };
        if (schema.valuelessOperators.indexOf(operator) >= 0) {
          return condition;
        }
        var type = fieldType(field) || "text";
        var raw = row.querySelector(".filter-value").value;
        if (
          schema.listValueOperators.indexOf(operator) >= 0 ||
          (type === "list" && (operator === "eq" || operator === "neq"))
        ) {
          condition.value = splitList(raw).map(function (item) {
            return scalar(item, type === "list" ? "text" : type);
          });
        } else if (raw.trim() === "" && type !== "text") {
          condition.value = null;
        } else {
          condition.value = scalar(raw, type === "list" ? "text" : type);
        }
        return condition;
      });
      filterInput.value = JSON.stringify({ match: matchSelect.value, conditions: conditions });
      document.getElementById("filter-empty").hidden = conditions.length > 0;
    }

    /* Whether the row's value is a list: in / not_in, or equals / is not on a list field. */
    function takesList(type, operator) {
      return schema.listValueOperators.indexOf(operator) >= 0 || (type === "list" && (operator === "eq" || operator === "neq"));
    }

    /* Whether the typed text still reads as a value of `type` for `operator`. */
    function valueFits(raw, type, operator, wasList) {
      if (schema.valuelessOperators.indexOf(operator) >= 0 || takesList(type, operator) !== wasList) {
        return false;
      }
      var items = wasList ? splitList(raw) : [raw.trim()];
      return items.every(function (item) {
        if (item === "" || type === "list" || type === "text") {
          return true;
        }
        if (NUMERIC_TYPES.indexOf(type) >= 0 && type !== "timestamp") {
          return NUMBER_TEXT.test(item);
        }
        if (type === "boolean") {
          return item === "true" || item === "false";
        }
        return true;
      });
    }

    /* `fit`: a field change, which picks the first operator of the new field's type when
       the chosen one does not apply, and clears a value that no longer fits. Elsewhere (the
       model or the trigger changed, posted rows) the operator is kept, flagged, for the
       server to say what it refuses. */
    function fillOperators(row, selected, fit) {
      var select = row.querySelector(".filter-operator");
      var field = row.querySelector(".filter-field").value;
      var type = offeredType(field);
      // changed / not_changed: for a Changed trigger, on a field itself.
      var withChange = changeAware() && !isPrevious(field);
      var operators = (type ? schema.operatorsByType[type] : []).filter(function (operator) {
        return withChange || !isChangeOperator(operator);
      });
      if (fit && selected && operators.indexOf(selected) < 0) {
        selected = operators[0] || "";
      }
      select.innerHTML = "";
      select.appendChild(option("", "— operator —", !selected));
      operators.forEach(function (operator) {
        select.appendChild(option(operator, operatorLabel(operator), operator === selected));
      });
      if (selected && operators.indexOf(selected) < 0) {
        // Kept, as the field it no longer fits: the server says what it refuses.
        var label = operatorLabel(selected) + (type ? " (not for this field)" : "");
        if (isChangeOperator(selected)) {
          label = operatorLabel(selected) + (changeAware() ? " (on the field itself, not its value before)" : " (Changed User Events only)");
        }
        select.appendChild(option(selected, label, true));
      }
      toggleValue(row);
      flagFilterRow(row);
    }

    function flagFilterRow(row) {
      var field = row.querySelector(".filter-field").value;
      var operator = row.querySelector(".filter-operator").value;
      flagChangedOnly(row, isPrevious(field) || isChangeOperator(operator));
    }

    function toggleValue(row) {
      var operator = row.querySelector(".filter-operator").value;
      var value = row.querySelector(".filter-value");
      var valueless = schema.valuelessOperators.indexOf(operator) >= 0;
      value.hidden = valueless;
      var type = fieldType(row.querySelector(".filter-field").value);
      var many = takesList(type, operator);
      value.placeholder = many ? "values, separated by commas" : type === "boolean" ? "true or false" : "value";
    }

    function addFilterRow(condition) {
      condition = condition || {};
      var row = element("div", { class: "editor-row filter-row" }, [
        element("select", { class: "filter-field", "aria-label": "Field" }),
        element("select", { class: "filter-operator", "aria-label": "Operator" }),
        element("input", { type: "text", class: "filter-value vTextField", "aria-label": "Value" }),
      ]);
      row.appendChild(
        removeButton(function () {
          row.parentNode.removeChild(row);
          writeFilter();
        })
      );
      row.appendChild(changedOnlyNote());
      row.appendChild(element("ul", { class: "errorlist row-errors" }));
      filterRows.appendChild(row);
      fillFieldSelect(row.querySelector(".filter-field"), condition.field || "");
      fillOperators(row, condition.operator || "");
      row.querySelector(".filter-value").value = shown(condition.value);
      var fieldTypeBefore = fieldType(condition.field || "");
      row.querySelector(".filter-field").addEventListener("change", function () {
        var operatorBefore = row.querySelector(".filter-operator").value;
        var wasList = takesList(fieldTypeBefore, operatorBefore);
        fillOperators(row, operatorBefore, true);
        var value = row.querySelector(".filter-value");
        fieldTypeBefore = fieldType(row.querySelector(".filter-field").value);
        if (!valueFits(value.value, fieldTypeBefore, row.querySelector(".filter-operator").value, wasList)) {
          value.value = "";
        }
        writeFilter();
      });
      row.querySelector(".filter-operator").addEventListener("change", function () {
        toggleValue(row);
        flagFilterRow(row);
        writeFilter();
      });
      row.querySelector(".filter-value").addEventListener("input", writeFilter);
      return row;
    }

    if (filterInput && filterEditor) {
      var filter = readJson(filterInput, {}, filterEditor);
      if (!filter || typeof filter !== "object" || Array.isArray(filter)) {
        filter = {};
      }
      matchSelect.value = filter.match === "any" ? "any" : "all";
      (Array.isArray(filter.conditions) ? filter.conditions : []).forEach(function (condition) {
        addFilterRow(condition && typeof condition === "object" ? condition : {});
      });
      document.getElementById("filter-empty").hidden = filterRowList().length > 0;
      matchSelect.addEventListener("change", writeFilter);
      document.getElementById("add-filter-row").addEventListener("click", function () {
        addFilterRow({}).querySelector(".filter-field").focus();
        writeFilter();
      });
      placeErrors(filterEditor, /^filter\.conditions\[(\d+)\]/, filterRowList);
    }

    /* --- Update Value ------------------------------------------------------------------ */

    var updateInput = document.getElementById("id_update_values");
    var updateEditor = document.getElementById("update-editor");
    var updateRows = document.getElementById("update-rows");
    var PROPERTY = "properties";

    function updateRowList() {
      return Array.prototype.slice.call(updateRows.querySelectorAll(".update-row"));
    }

    function constant(raw, target) {
      if (target === "value") {
        return NUMBER_TEXT.test(raw.trim()) ? Number(raw.trim()) : raw;
      }
      if (/^eventLabel/.test(target)) {
        return splitList(raw);
      }
      if (target.indexOf(schema.propertiesPrefix) === 0) {
        try {
          return JSON.parse(raw);
        } catch (error) {
          return raw;
        }
      }
      return raw;
    }

    function targetOf(row) {
      var chosen = row.querySelector(".update-target").value;
      if (chosen === PROPERTY) {
        return schema.propertiesPrefix + row.querySelector(".update-property").value.trim();
      }
      return chosen;
    }

    function writeUpdates() {
      var items = updateRowList().map(function (row) {
        var target = targetOf(row);
        var item = { target: target };
        if (row.querySelector(".update-source").value === "field") {
          item.field = row.querySelector(".update-field").value;
        } else {
          item.value = constant(row.querySelector(".update-value").value, target);
        }
        return item;
      });
      updateInput.value = JSON.stringify(items);
      document.getElementById("update-empty").hidden = items.length > 0;
    }

    function toggleUpdate(row) {
      var isProperty = row.querySelector(".update-target").value === PROPERTY;
      row.querySelector(".update-property").hidden = !isProperty;
      var fromField = row.querySelector(".update-source").value === "field";
      row.querySelector(".update-field").hidden = !fromField;
      row.querySelector(".update-value").hidden = fromField;
      flagChangedOnly(row, fromField && isPrevious(row.querySelector(".update-field").value));
      var target = targetOf(row);
      row.querySelector(".update-value").placeholder = /^eventLabel/.test(target)
        ? "labels, separated by commas"
        : target === "value"
          ? "a number"
          : isProperty
            ? "text, or JSON"
            : "text";
    }

    function sourceTypes(row) {
      var chosen = row.querySelector(".update-target").value;
      var target = schema.targets[chosen];
      return target ? target.sourceTypes : null;
    }

    function addUpdateRow(item) {
      item = item || {};
      var target = typeof item.target === "string" ? item.target : "";
      var isProperty = target.indexOf(schema.propertiesPrefix) === 0;
      var targetSelect = element("select", { class: "update-target", "aria-label": "Target" });
      targetSelect.appendChild(option("", "— target —", !target));
      var known = Object.keys(schema.targets);
      known.forEach(function (name) {
        targetSelect.appendChild(option(name, name, name === target));
      });
      targetSelect.appendChild(option(PROPERTY, "properties.<name>", isProperty));
      if (target && !isProperty && known.indexOf(target) < 0) {
        targetSelect.appendChild(option(target, target, true));
      }
      var sourceSelect = element("select", { class: "update-source", "aria-label": "Source" });
      var fromValue = Object.prototype.hasOwnProperty.call(item, "value");
      sourceSelect.appendChild(option("field", "from field", !fromValue));
      sourceSelect.appendChild(option("value", "constant", fromValue));
      var row = element("div", { class: "editor-row update-row" }, [
        targetSelect,
        element("input", {
          type: "text",
          class: "update-property vTextField",
          placeholder: "property name",
          "aria-label": "Property name",
        }),
        sourceSelect,
        element("select", { class: "update-field", "aria-label": "Source field" }),
        element("input", { type: "text", class: "update-value vTextField", "aria-label": "Constant" }),
      ]);
      row.appendChild(
        removeButton(function () {
          row.parentNode.removeChild(row);
          writeUpdates();
        })
      );
      row.appendChild(changedOnlyNote());
      row.appendChild(element("ul", { class: "errorlist row-errors" }));
      updateRows.appendChild(row);
      row.querySelector(".update-property").value = isProperty
        ? target.slice(schema.propertiesPrefix.length)
        : "";
      fillFieldSelect(row.querySelector(".update-field"), item.field || "", sourceTypes(row));
      var value = item.value;
      row.querySelector(".update-value").value =
        isProperty && typeof value !== "string" && value !== undefined ? JSON.stringify(value) : shown(value);
      toggleUpdate(row);
      targetSelect.addEventListener("change", function () {
        fillFieldSelect(row.querySelector(".update-field"), row.querySelector(".update-field").value, sourceTypes(row));
        toggleUpdate(row);
        writeUpdates();
      });
      sourceSelect.addEventListener("change", function () {
        toggleUpdate(row);
        writeUpdates();
      });
      row.querySelector(".update-field").addEventListener("change", function () {
        toggleUpdate(row);
        writeUpdates();
      });
      row.querySelector(".update-property").addEventListener("input", writeUpdates);
      row.querySelector(".update-value").addEventListener("input", writeUpdates);
      return row;
    }

    if (updateInput && updateEditor) {
      var items = readJson(updateInput, [], updateEditor);
      (Array.isArray(items) ? items : []).forEach(function (item) {
        addUpdateRow(item && typeof item === "object" ? item : {});
      });
      document.getElementById("update-empty").hidden = updateRowList().length > 0;
      document.getElementById("add-update-row").addEventListener("click", function () {
        addUpdateRow({}).querySelector(".update-target").focus();
        writeUpdates();
      });
      placeErrors(updateEditor, /^updateValues\[(\d+)\]/, updateRowList);
    }

    /* --- The model: its fields and timestamp fields ------------------------------------ */

    function fillEventTime() {
      if (!eventTimeSelect) {
        return;
      }
      var selected = eventTimeSelect.value;
      var model = currentModel();
      var names = [schema.eventTimeIngested].concat(model ? model.timestampFields : []);
      eventTimeSelect.innerHTML = "";
      names.forEach(function (name) {
        var label = name === schema.eventTimeIngested ? schema.eventTimeIngestedLabel : name;
        eventTimeSelect.appendChild(option(name, label, name === selected));
      });
      if (names.indexOf(selected) < 0) {
        eventTimeSelect.value = schema.eventTimeIngested;
      }
    }

    /* The fields and operators each row may use: the model's, and for a Changed
       trigger also the values before the write and the change operators. */
    function refillRows() {
      filterRowList().forEach(function (row) {
        fillFieldSelect(row.querySelector(".filter-field"), row.querySelector(".filter-field").value);
        fillOperators(row, row.querySelector(".filter-operator").value);
      });
      updateRowList().forEach(function (row) {
        fillFieldSelect(row.querySelector(".update-field"), row.querySelector(".update-field").value, sourceTypes(row));
        toggleUpdate(row);
      });
      if (filterInput) {
        writeFilter();
      }
      if (updateInput) {
        writeUpdates();
      }
    }

    if (modelSelect) {
      modelSelect.addEventListener("change", function () {
        fillEventTime();
        refillRows();
      });
      if (!modelSelect.value) {
        fillEventTime();
      }
    }

    if (triggerSelect) {
      triggerSelect.addEventListener("change", refillRows);
    }
  });
})();
