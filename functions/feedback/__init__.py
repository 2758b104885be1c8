"""People's corrections of wrong answers (contracts.md sections 2a and 4): the item, how a request
becomes one, and the container that keeps them."""
