"""The web leaderboard's page, script and style (copied by benchmark/report/site.py)."""
