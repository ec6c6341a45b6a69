"""OCI runtime specs as containerd generates them.

- :mod:`.spec`: containerd's default spec (:func:`default_spec`), JSON helpers, cgroup mode;
- :mod:`.opts`: composable options (``with_*``) and :func:`generate`;
- :mod:`.seccomp`: containerd's default seccomp profile;
- :mod:`.user`: users and groups read safely from an image's rootfs.
"""

from .opts import SpecContext, SpecOpt, apply, compose, generate
from .seccomp import default_profile
from .spec import Spec, default_spec, from_any, marshal, to_any

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
