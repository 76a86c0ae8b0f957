"""Provider adapters: pure translation between the OpenAI wire format and each upstream.

See base.py for the interface and registry.py for the type -> adapter mapping.
"""
