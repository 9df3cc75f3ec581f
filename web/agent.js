/* receipt browser agent: see PROTOCOL.md */
