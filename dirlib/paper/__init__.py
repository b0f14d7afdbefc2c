"""The paper's companion: its method's post-hoc phases as published (``posthoc``), the audit
(``audit``, ``audit_primary``), tables from stored records (``results``), the book's runs,
numbers, plots, findings and widgets (``runs``, ``figures``, ``plots``, ``findings``, ``widgets``,
``ridge``, ``naming``) and the book's build (``book``).

It sits on the core library (``dirlib`` itself) and the tools (``dirlib.tools``); neither imports
it.
"""
