"""How provisioning reports a bad value: at its JSON path, with a message for the file's
author. Shared by every section, the core's and the apps'."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError


@dataclass(frozen=True)
class ProvisioningError:
    """One bad value: `path` is its JSON path (`models[2].fields[0].name`), "" for the file."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ProvisioningInvalid(Exception):
    """The file was refused; nothing was written."""

    def __init__(self, errors: list[ProvisioningError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


def path_join(path: str, key: str | int) -> str:
    """The JSON path of `key` inside `path`: an object's key, or a list's index."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def invalid(path: str, message: str) -> ProvisioningInvalid:
    return ProvisioningInvalid([ProvisioningError(path, message)])


def refusing(path: str, service: Callable[..., Any], **kwargs: Any) -> Any:
    """Call a service; turn its ValidationError into ProvisioningInvalid at `path`, the
    error's field names becoming keys under it (`models[0]` + `momCode`)."""
    try:
        return service(**kwargs)
    except ValidationError as error:
        if hasattr(error, "error_dict"):
            raise ProvisioningInvalid(
                [
                    ProvisioningError(path_join(path, key), message)
                    for key, messages in error.message_dict.items()
                    for message in messages
                ]
            ) from None
        raise ProvisioningInvalid([ProvisioningError(path, m) for m in error.messages]) from None
