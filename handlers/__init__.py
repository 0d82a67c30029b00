"""The dispatch runtime and the sync handlers that turn logged events into effects."""
