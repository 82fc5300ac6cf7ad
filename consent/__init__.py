"""The legal basis for every look: brukare, plans, consents, pauses, the gate, staff, audit."""
