"""Billing schema revisions, oldest first."""
