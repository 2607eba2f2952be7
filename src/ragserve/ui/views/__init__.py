"""One module per page; each ``render`` takes what it needs, so ``AppTest`` can drive it alone.

Not named ``pages``: Streamlit would take a ``pages/`` folder beside ``app.py`` for page scripts.
"""
