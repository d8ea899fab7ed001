"""Real SMTP servers on loopback for mailout's tests: scripted faults, a fast sink, Postfix."""
