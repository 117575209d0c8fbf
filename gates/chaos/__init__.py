"""Chaos: seeded fault schedules over real engine runs, judged by an independent checker."""
