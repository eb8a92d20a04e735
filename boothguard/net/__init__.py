"""Network state sources (VPN up/down for home-office booths)."""
