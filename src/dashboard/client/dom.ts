/**
 * The one way the page makes elements. Attributes go through setAttribute and text through text
 * nodes, never innerHTML, so nothing the server sends (model names, event summaries, error
 * messages) is ever parsed as markup; and there are no inline styles (the CSP forbids them; the
 * stylesheet styles by class and data attribute).
 */

export type Child = Node | string | null | undefined | false;

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | boolean | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    element.setAttribute(name, value === true ? '' : value);
  }
  append(element, ...children);
  return element;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  }
}

/** Sets an element's text, touching the DOM only when it changes (the page updates every second). */
export function setText(element: Element, text: string): void {
  if (element.textContent !== text) element.textContent = text;
}

/** Finds a required element the page built itself; a missing one is a bug in the page. */
export function required<T extends Element>(root: ParentNode, selector: string): T {
  const found = root.querySelector<T>(selector);
  if (found === null) throw new Error(`dashboard page: no element ${selector}`);
  return found;
}
