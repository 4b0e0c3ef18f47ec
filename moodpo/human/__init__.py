"""Human preference studies: the vote store, studies and their pairs, and the vote statistics."""
