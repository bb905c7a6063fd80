"""The Responses API (``POST /v1/responses``): mirrored and split like chat, with each
conversation kept on the arm that holds it."""
