"""Night rounds, checks, escalation, and the motion check with its probe."""
