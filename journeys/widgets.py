"""The User Event form's row editors, as a form widget."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django import forms

EDITORS = ("filter", "update")


class RowEditorWidget(forms.Widget):
    """A JSON value edited as rows: the Filter's conditions (`editor="filter"`) or the
    Update Values (`editor="update"`).

    It renders the hidden input the form posts, holding the JSON, and beside it the
    editor (journeys/widgets/row_editor.html) that console/user_event_form.js, its media,
    fills with one row per condition or update value and writes back on every change.
    The script takes the fields, operators and targets from the page's
    #user-event-schema, which the User Event admin's change form carries.

    `data-errors` ({path: [messages]}, set in `attrs` by
    `cdp.console.service_errors_apply`) goes on the editor, not on the input: the script
    shows each message on the row its path names. `error_words(path, message)` words each
    message for the page (`data-error-words`, in the same shape); `data-errors` keeps the
    service's messages, which the script puts in each row message's title.
    """

    template_name = "journeys/widgets/row_editor.html"
    shows_errors_by_path = True

    class Media:
        css = {"all": ["console/user_event_form.css"]}
        js = [forms.Script("console/user_event_form.js", defer=True)]

    def __init__(
        self,
        editor: str,
        attrs: dict[str, Any] | None = None,
        *,
        error_words: Callable[[str, str], str] | None = None,
    ) -> None:
        if editor not in EDITORS:
            raise ValueError(f"editor must be one of {EDITORS}, not {editor!r}")
        super().__init__(attrs)
        self.editor = editor
        self.error_words = error_words

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        widget = context["widget"]
        widget["type"] = "hidden"  # for django/forms/widgets/input.html
        # A copy of the attributes: the input gets every one but data-errors.
        errors = widget["attrs"].pop("data-errors", "{}")
        by_path: dict[str, list[str]] = json.loads(errors)
        words = self.error_words or (lambda _path, message: message)
        widget["editor"] = {
            "name": self.editor,
            "input_id": widget["attrs"].get("id", f"id_{name}"),
            "errors": errors,
            "error_words": json.dumps(
                {path: [words(path, m) for m in messages] for path, messages in by_path.items()},
                ensure_ascii=False,
            ),
        }
        return context
