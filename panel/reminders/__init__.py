"""Token renewal reminders: settings, recipients, the plan, the ledger, the sweep, the emails and their jobs.

May import ``panel.sage``; never imports ``panel.settings`` (the screen).
"""
