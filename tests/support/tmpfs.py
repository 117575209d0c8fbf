"""The size-limited tmpfs now lives with chaos, which fills the evidence disk."""

from gates.chaos.disk import MountError as MountError
from gates.chaos.disk import mounted_tmpfs as mounted_tmpfs
