#!/usr/bin/env python3
"""Trims PaulSonOfLars/telegram-bot-api-spec's api.json to what the update
generator reads: every type's fields (name, types, required), the subtypes of
abstract types, the constant a field always holds ("always “x”") and, for
Message fields, whether the description calls it a service message.

Usage: trim.py < api.json > bot_api_types.json
"""
import json
import re
import sys

spec = json.load(sys.stdin)
out = {"version": spec["version"], "release_date": spec["release_date"], "types": {}}
for name, t in spec["types"].items():
    o = {}
    if "fields" in t:
        fields = []
        for f in t["fields"]:
            g = {"name": f["name"], "types": f["types"], "required": f["required"]}
            d = f.get("description", "")
            m = re.search(r"always \"([^\"]+)\"", d)
            if m:
                g["const"] = m.group(1)
            m = re.search(r"(?:can be|one of|either) \"([^\"]+)\"", d)
            if m and "const" not in g:
                g["one_of"] = m.group(1)
            if name == "Message" and "Service message" in d:
                g["service"] = True
            fields.append(g)
        o["fields"] = fields
    if "subtypes" in t:
        o["subtypes"] = t["subtypes"]
    out["types"][name] = o
json.dump(out, sys.stdout, separators=(",", ":"), sort_keys=False)
sys.stdout.write("\n")
