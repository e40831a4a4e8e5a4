"""Build: plan candidates, make their artifacts, verify, time, choose, package."""
