"""Using a trained model: `caffepipe predict` labels people's own image files."""
