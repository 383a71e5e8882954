"""The first hour of a new user: `mallard doctor`, `mallard add source` (with a preview) and `mallard run`.

Top layer (with cli.py): these modules may import anything below; nothing below imports them.
"""
