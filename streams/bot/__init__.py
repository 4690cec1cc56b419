"""The bot: answers frequent questions with sources, or hands off to a person once (docs/bot.md).

policy.py  when to answer and when to hand off (pure: thresholds, rules, answer texts)
stage.py   the step inside the session-route stage (Redis reads, moves, replies)
"""
