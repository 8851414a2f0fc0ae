"""What the CLI and the dashboard do: list states, describe, reset a breaker, set up pools."""
