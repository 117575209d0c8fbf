"""The fault suite's controlled PostgreSQL now lives with chaos, which owns such servers."""

from gates.chaos.postgres import ControlledPostgres as ControlledPostgres
