// Search-as-you-type over all companies: an ARIA combobox with a listbox of results.
// Arrow keys move through the results, Enter picks, Escape closes; the count is announced.
import { api } from "./api.js";
import { debounce, el } from "./dom.js";

const DEBOUNCE_MS = 150; // one request per pause in typing, not per key

export class CompanySearch {
  constructor(input, list, announcer, onPick) {
    this.input = input;
    this.list = list;
    this.announcer = announcer;
    this.onPick = onPick;
    this.items = [];
    this.active = -1;
    this.sequence = 0; // answers to older queries are dropped when they arrive late
    const run = debounce(() => this.search(), DEBOUNCE_MS);
    input.addEventListener("input", run);
    input.addEventListener("keydown", (event) => this.key(event));
    input.addEventListener("blur", () => setTimeout(() => this.close(), 150));
  }

  async search() {
    const q = this.input.value.trim();
    const ticket = ++this.sequence;
    if (!q) {
      this.close();
      return;
    }
    let page;
    try {
      page = await api.searchCompanies(q);
    } catch (error) {
      if (ticket === this.sequence) this.announce(`Search failed: ${error.message}`);
      return;
    }
    if (ticket !== this.sequence) return;
    this.render(page.items);
  }

  render(items) {
    this.items = items;
    this.active = items.length ? 0 : -1;
    this.list.replaceChildren(
      ...items.map((company, index) =>
        el(
          "li",
          {
            id: `result-${company.id}`,
            role: "option",
            "data-company-id": company.id,
            "aria-selected": "false",
            onmousedown: (event) => event.preventDefault(), // keep focus in the input
            onclick: () => this.pick(index),
          },
          company.name,
          company.domains && company.domains.length ? el("span", { class: "why" }, company.domains[0]) : null,
        ),
      ),
    );
    if (!items.length) this.list.append(el("li", { class: "empty", role: "option", "aria-disabled": "true" }, "No company matches"));
    this.list.hidden = false;
    this.input.setAttribute("aria-expanded", "true");
    this.highlight();
    this.announce(items.length === 1 ? "1 company found" : `${items.length} companies found`);
  }

  highlight() {
    const options = this.list.querySelectorAll('[role="option"][data-company-id]');
    options.forEach((option, index) => {
      const on = index === this.active;
      option.setAttribute("aria-selected", String(on));
      option.classList.toggle("active", on);
      if (on) option.scrollIntoView({ block: "nearest" });
    });
    if (this.active >= 0) this.input.setAttribute("aria-activedescendant", options[this.active].id);
    else this.input.removeAttribute("aria-activedescendant");
  }

  key(event) {
    if (this.list.hidden || !this.items.length) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      this.active = (this.active + step + this.items.length) % this.items.length;
      this.highlight();
    } else if (event.key === "Enter") {
      event.preventDefault();
      if (this.active >= 0) this.pick(this.active);
    } else if (event.key === "Escape") {
      this.close();
    }
  }

  pick(index) {
    const company = this.items[index];
    this.input.value = company.name;
    this.close();
    this.announce(`${company.name} chosen`);
    this.onPick(company);
  }

  close() {
    this.list.hidden = true;
    this.input.setAttribute("aria-expanded", "false");
    this.input.removeAttribute("aria-activedescendant");
  }

  announce(text) {
    this.announcer.textContent = text;
  }
}
