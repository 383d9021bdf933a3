"""Prompt budgets: exact CLIP and chat-prompt token counts, fitting phrases to CLIP windows."""
