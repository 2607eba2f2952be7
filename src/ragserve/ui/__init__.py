"""The Streamlit web UI: talks to the HTTP API with httpx and never imports the engine."""
