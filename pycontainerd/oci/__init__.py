"""OCI runtime specs as containerd generates them.

- :mod:`.spec`: containerd's default spec (:func:`default_spec`), JSON helpers, cgroup mode;
- :mod:`.opts`: composable options (``with_*``) and :func:`generate`;
- :mod:`.seccomp`: containerd's default seccomp profile;
- :mod:`.user`: users and groups read safely from an image's rootfs.

The names below are imported on first use: reading a container's spec
(:mod:`.spec`) does not load option building and the seccomp profile.
"""

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
    from .opts import SpecContext, SpecOpt, apply, compose, generate
    from .seccomp import default_profile
    from .spec import Spec, default_spec, from_any, marshal, to_any

__getattr__, __dir__ = lazy_exports(__name__, {
    ".opts": ("SpecContext", "SpecOpt", "apply", "compose", "generate"),
    ".seccomp": ("default_profile",),
    ".spec": ("Spec", "default_spec", "from_any", "marshal", "to_any"),
})

__all__ = [
    "Spec",
    "SpecContext",
    "SpecOpt",
    "apply",
    "compose",
    "default_profile",
    "default_spec",
    "from_any",
    "generate",
    "marshal",
    "to_any",
]
