"""The Sage token domain: pure status, the Sage ID client, the encrypted token store and the Sage API calls.

Imports nothing from ``panel.reminders`` or ``panel.settings``; the screen lives in ``panel.settings``.
"""
