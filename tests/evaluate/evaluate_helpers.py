"""Texts shared by the eval tests and their fixtures."""

QUESTION = "what is seven plus four"
ANSWER = "seven plus four is eleven"
