"""The networks and the two training loops (the compiled train_step and the chapter's), and the resumable
training state."""
